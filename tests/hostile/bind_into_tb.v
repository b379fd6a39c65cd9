// `bind` inside the design, inserting an instance into the testbench.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
  bind tb top_module extra(.a(8'h0), .b(8'h0), .y());
endmodule
