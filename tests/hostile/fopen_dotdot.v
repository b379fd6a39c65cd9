// Writes a file next to the sample dir through ../.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  integer f;
  initial begin
    f = $fopen("../pwned_dotdot.txt", "w");
    $fdisplay(f, "pwned");
  end
  assign y = a ^ b;
endmodule
